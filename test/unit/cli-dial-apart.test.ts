// The run command's bundle gets the SSH part of the CLI from another bundle (cli/dial-apart.ts):
// an EbpError made by that bundle's copy of the class becomes one of this copy's as it crosses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adopted } from '../../src/cli/dial-apart.js';
import { EbpError } from '../../src/lib/errors.js';

/** What the other bundle's EbpError looks like from here: another class of the same shape. */
class OtherEbpError extends Error {
  override readonly name = 'EbpError';
  constructor(readonly code: string, message: string, readonly hint?: string) {
    super(message);
  }
}

test('an EbpError of the other bundle becomes this one\'s: code, message, hint, exit status', () => {
  const other = new OtherEbpError('PEER_UNREACHABLE', 'cannot reach x', 'is it up?');
  const error = adopted(other);
  assert.ok(error instanceof EbpError);
  assert.deepEqual([error.code, error.message, error.hint, error.exitStatus, error.cause], ['PEER_UNREACHABLE', 'cannot reach x', 'is it up?', 255, other]);
  const bare = adopted(new OtherEbpError('USAGE', 'no'));
  assert.ok(bare instanceof EbpError);
  assert.equal(bare.hint, undefined);
});

test('this bundle\'s own errors and anything else cross as they are', () => {
  const own = new EbpError('USAGE', 'no');
  assert.equal(adopted(own), own);
  const plain = new TypeError('x');
  assert.equal(adopted(plain), plain);
  assert.equal(adopted('text'), 'text');
});
