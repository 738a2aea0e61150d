// What a daemon does once a launch's status has gone out, and when.

/**
 * After a launch's status has gone out, the daemons keep still this long before their
 * housekeeping: on the host, the sandbox's teardown (its cgroup, its held namespaces), the audit
 * record and the next spare; on the person's side, the session opened ahead for the next launch.
 * The person's side is busy at that moment: `ebp run` exits and a script starts its next command.
 * A process woken by a write runs on the writer's CPU, so work done at once by the daemon that
 * woke it takes the CPU from that exit (traced with `perf sched`: the CLI runnable but waiting
 * while the daemons tear down and open ahead). Long enough for the CLI to be gone, short against
 * the next Node start-up, which is when the next launch can come.
 */
export const QUIET_AFTER_LAUNCH_MS = 6;
