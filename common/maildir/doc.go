// Package maildir is tern's message store: Maildir++ trees with a per-folder
// UID index, shared by lmtpd (delivery), imapd and pop3d, and by any other
// program that reads or writes Maildir (procmail, mutt, rsync, backups).
// tern-maildir(5) describes the same format for administrators.
//
// # Layout
//
// One tree per user. INBOX is the root directory; every other folder is a
// directory ".Name" beside cur/, new/ and tmp/, with "." as the hierarchy
// separator (".Archive.2024"). Each name component is written in IMAP
// modified UTF-7 (RFC 3501 5.1.3), as Dovecot does: "Ünï" is ".&ANw-n&AO8-".
// Folder directories hold an empty "maildirfolder" marker (Maildir++). Open
// creates Sent, Drafts, Trash, Junk and Archive (RFC 6154 SPECIAL-USE) and
// subscribes each one it creates, and only then (so an unsubscribe sticks).
// Folder names from clients are checked by ValidateName; directories and
// files that are symlinks are never followed (lstat checks, O_NOFOLLOW).
//
// # Message files
//
// A message is one file named KEY in new/ or KEY:2,FLAGS in cur/. KEY is
// "time.M<usec>P<pid>Q<counter>R<random>.host,S=size,W=wiresize"; it never changes.
// FLAGS are the Maildir letters in ASCII order: D (\Draft), F (\Flagged),
// P ($Forwarded), R (\Answered), S (\Seen), T (\Deleted), then keyword
// letters a..z, where letter i is line "i keyword" of dovecot-keywords (the
// Dovecot convention, so Dovecot and tern agree on keywords). Keywords beyond
// the 26 letters are kept in the index only.
//
// Line ends (wire.go): messages are stored with LF, as procmail, maildrop,
// Postfix local(8) and Dovecot store them, so that other Maildir tools read
// them as their own; ",S=" is the size on disk and ",W=" the size of the
// wire form (CRLF), which imapd and pop3d serve through one WireReader and
// report through one Folder.WireSize. Files with CRLF or mixed line ends
// (older tern, other writers) are read the same way.
//
// Delivery (Deliver, lmtpd): write tmp/KEY-without-size, fsync, link to
// new/KEY (or cur/KEY:2,FLAGS), unlink the tmp name, fsync the directory.
// A crash before the link leaves only a tmp/ file (removed after 36 hours,
// as qmail's maildir(5) says); after the link the message is complete.
// Where the kernel and file system allow, Deliver writes an unnamed
// O_TMPFILE file in tmp/ instead and links it into new/ with linkat(2)
// (tmpfile.go): two fewer changes to tmp/ per message, and a crash leaves
// nothing there at all.
// Deliveries into one directory that end together share the fsync of the
// directory (groupsync.go): each waits for one that began after its link.
// Append and Copy write to cur/ the same way and then assign the UID at once.
// Append is Stage (tmp/, fsync) and Publish (rename into cur/, one fsync of
// cur/ and one durable log write for all); IMAP's MULTIAPPEND stages every
// message of a command and publishes them together (stage.go).
//
// # Index
//
// Each folder directory has "tern-index" (text):
//
//	tern-index 2 V<uidvalidity> N<uidnext> M<highestmodseq> G<generation> C<count> F<firstrecent>
//	<uid> <modseq> <size> <mtime-ns> <saved> <emailid> <key> <info> [<keyword>...]
//	.
//
// saved is the RFC 8514 save date (Unix seconds), emailid the RFC 8474
// EMAILID when it is not the one derived from the key, else "-"
// (objectid.go). Version 1 (without both) is still read and rewritten as
// version 2 before its log grows; older binaries refuse version 2 as a
// damaged index (new UIDVALIDITY).
//
// F is the first UID no IMAP session has seen as \Recent (RFC 3501 2.3.2);
// Folder.ClaimRecent gives the messages from it up to one session and moves
// it to UIDNEXT, under the lock, as Dovecot does in its index. A header
// without F (an index written before it existed) reads as F = N: nothing
// recent. Then one line per message in ascending UID order; key, info (":2,FLAGS" as last
// seen, "-" if none) and keywords are %XX-escaped where they hold bytes
// <= 0x20, 0x7f or "%". The final "." line and the count detect a truncated
// copy. The index is only ever replaced whole: tern-index.tmp → fsync →
// rename → fsync of the directory; it is read and written only under an
// exclusive fcntl OFD lock on "tern-index.lock" (see lock.go for why OFD
// locks), a file that is never removed and records the last UIDVALIDITY.
// After the "." line comes the expunge history for QRESYNC ("K <floor>
// <count>", then "X <modseq> <uid-set>" records; vanished.go).
//
// Changes between two rewrites go to the change log "tern-index.log"
// beside it (format in changelog.go), one appended line each:
//
//	tern-index-log 2 V<uidvalidity> G<generation> B<boot-id> R<reserved>
//	<crc32> E <uid> <modseq> <size> <mtime-ns> <saved> <emailid> <key> <info> [<keyword>...]
//	<crc32> X <modseq> <uid>...
//	<crc32> R <reserved>
//	<crc32> F <firstrecent>
//
// E adds a UID or replaces its entry, X expunges, R reserves modseqs, F
// raises the first-recent UID (never fsynced: losing it in a machine crash
// only makes messages recent again). The
// header names the index generation the log extends (otherwise it is stale
// and ignored); a line failing its CRC ends the log. When the log outgrows
// max(64 KiB, half the index) it is compacted: the index is rewritten (new
// generation, durably) and the log cut back to a header. What is fsynced:
//
//   - new UIDs (Append, Copy, Sync giving UIDs to new files): the log line
//     is fsynced before anyone learns the UID (RFC 4315 APPENDUID). Append
//     fsyncs cur/ (the message's name) and the log at the same time;
//   - flag changes and expunges: the rename or removal in cur/ is fsynced
//     before OK; the log line (only the modseq, the names hold the flags)
//     is not, unless it changes a keyword without a letter (kept only in
//     the index), or the folder is on NFS;
//   - modseqs: before a line uses a modseq above the reservation, an R line
//     reserving 1024 more is fsynced. The header records the boot id.
//
// Crash analysis. A process crash loses nothing written (the page cache
// survives). A machine crash may lose unsynced log lines, never a UID given
// out. On reading a log written in another boot, HIGHESTMODSEQ is raised to
// the reservation; the next sync finds the renamed or removed files and gives
// them modseqs above it, so flags come back from the names, expunges are
// redone, and no client sees a modseq again or HIGHESTMODSEQ go backwards.
// A torn last line is ignored and the next writer compacts.
//
// Readers: imapd, pop3d and lmtpd (through Sync). Writers: the same, under
// the lock. Other programs never touch the index; their changes are
// reconciled by Sync:
//
//   - a file in new/ is moved to cur/ (KEY:2,) and gets the next UID;
//   - a file in cur/ without an index line gets the next UID (files are taken
//     in name order, so UIDs follow delivery time);
//   - a file whose info differs from the index was renamed (a flag change):
//     same UID, flags from the name, a new modseq;
//   - an index line without a file was expunged: dropped.
//
// UIDs strictly ascend and are never reused: uidnext only grows. If the
// index is missing or does not parse, a new index gets a UIDVALIDITY greater
// than every earlier one (RFC 3501 2.3.1.1), so a UID never silently names
// another message. The unreadable file is kept as tern-index.corrupt.
//
// Crash recovery, between any two steps of a change: files always change
// first, the index or its log second. A message in cur/ without an index line gets a
// UID at the next Sync; a file renamed before the index was written is seen
// as an outside flag change; a file removed before the index was written is
// seen as expunged; a half-written tern-index.tmp is truncated by the next
// writer; the lock dies with its holder. No step leaves a UID mapped to two
// files.
//
// # Dovecot migration
//
// A folder with dovecot-uidlist (version 1 or 3) and no tern index (and no
// tern-index.lock, which would mean a tern index existed and was lost) is
// imported: same UIDVALIDITY, same UIDs for the files it lists, same next UID,
// keywords through dovecot-keywords. Dovecot can read a tern Maildir as any
// Maildir (it assigns its own UIDs, as it would after losing its uidlist).
//
// # Concurrency and cost
//
// All methods are safe for concurrent use by goroutines and processes. Per
// process, every Folder of one directory shares one state: one parsed index,
// one snapshot, one watcher. Sync lists no directory when nothing changed:
// while the process has the folder open, inotify watches new/, cur/ and the
// folder directory (events.go), and Sync trusts its snapshot when no event
// that this process did not cause arrived since its last full scan began,
// the index was not replaced and the log has the size last seen. The
// process's own changes (SetFlags, Expunge, Append) register the events
// they will cause, update the state in place and append to the log, so they
// cost no rescan either. Without inotify (none, out of watches, NFS) Sync
// stats new/, cur/ and the index and scans unless they are unchanged and
// older than a second (a change in the same timestamp tick would not move
// the mtime). Bodies are never read to list a folder.
package maildir
