// Package queue is tern's durable mail queue: messages that smtpd has
// acknowledged but not yet delivered, waiting for lmtpd or a remote MX.
// tern-queue(5) documents the same format for administrators.
//
// # Layout
//
// The queue lives in state_dir/queue:
//
//	tmp/<id>       a message being received (the spool file), locked by its writer;
//	               a small one is held in memory instead until it must be queued
//	tmp/<id>.env   an envelope being rewritten, under the message's lock
//	data/<id>      the message content, written once, never changed
//	env/<id>       the envelope: sender, recipients and their state, history
//	corrupt/       damaged messages moved aside; never delivered
//	kick           touched to ask the running queue runner for a run now
//	flush          touched by Flush: the runner also ends its hosts' backoff
//
// An id is 21 lower-case hex digits: the arrival time in microseconds,
// then 32 random bits, so ids sort by arrival and never name another path.
//
// # The envelope file
//
// One record per line, "name field field…"; fields are separated by one
// space and escaped (%XX for '%', space, controls and 8-bit bytes; "%"
// alone is the empty string). The first line is "tern-queue 1"; the last
// is "end <sha256>" with the SHA-256 of every byte before it. A file
// without a valid end record is torn and is never used (ErrTorn). The
// records are listed in tern-queue(5) and in Envelope.marshal.
//
// # State machine
//
// A message is defined by which of its files exist:
//
//	tmp/<id> only             receiving; not acknowledged
//	data/<id> only            committing (or deleting); not queued
//	data/<id> + env/<id>      queued: each recipient pending, delivered,
//	                          failed (DSN owed) or bounced (DSN queued or not wanted)
//	nothing                   done: every recipient delivered or bounced
//
// Commit: write tmp/<id> → fsync → rename to data/<id> → fsync data/ →
// write tmp/<id>.env → fsync → rename to env/<id> → fsync env/. Only then
// is the message acknowledged (250). Every later change of the envelope is
// the same temp → fsync → rename → fsync dir, so a reader always sees a
// whole old or whole new envelope. Remove deletes env/<id> first, fsyncs
// env/, then deletes data/<id>.
//
// # Locking
//
// Whoever changes a message holds an exclusive flock(2) on its data file
// (on the spool file while it is in tmp/; the lock follows the rename).
// The queue runner in smtpd takes it for a delivery attempt; mailq takes it
// to hold, release, delete or flush. Claim never waits: a message in
// delivery gives ErrBusy. Readers (List, Get) take no lock: renames make
// every envelope they read consistent.
//
// # Crash recovery
//
// Recover, run by smtpd at start, looks at what a crash between any two
// steps above can leave, and uses the locks to tell a dead writer from a
// live one (lmtpd and mailq may be enqueueing at the same moment):
//   - an unlocked tmp/ file: the writer died before acknowledging; removed.
//   - data/<id> unlocked and without env/<id>: a crash inside Commit (not
//     acknowledged) or inside Remove (already done); removed.
//   - env/<id> that is torn, or without data/<id>: moved to corrupt/.
//   - a data file whose size or SHA-256 differs from its envelope is found
//     by Claim.Data before any delivery and moved to corrupt/.
//
// A crash during a delivery leaves the envelope as it was before the
// attempt, so the attempt is repeated: a recipient may get a message
// twice, never zero times.
package queue
