// Package auth checks logins against tern's users file and offers the SASL
// PLAIN and LOGIN server mechanisms that smtpd, imapd and pop3d plug into
// their protocol libraries.
//
// # The users file
//
// The users file (the "users" key of tern.toml) is read by smtpd (AUTH on
// submission), imapd and pop3d (logins), and lmtpd (which recipients exist,
// and per-user settings such as a quota). tern never writes it; the
// administrator does, with an editor or with doveadm pw / HashPassword. Its
// format is Dovecot's passwd-file, so the same file serves both:
//
//	# comment
//	demo@example.test:{BLF-CRYPT}$2y$05$...
//	alice@example.test:{SHA512-CRYPT}$6$...:::::: userdb_quota_rule=*:storage=1G
//
// One user per line, fields separated by ':':
//
//	user:password:uid:gid:gecos:home:shell:extra_fields
//
// Only user, password and extra_fields mean anything to tern; uid, gid, gecos,
// home and shell are accepted and ignored, and trailing fields may be left
// out. extra_fields is everything after the seventh ':' (so values may
// contain ':'), a space-separated list of key=value pairs, or bare keys (kept
// with an empty value). They are available through Lookup under the key as
// written, for example "userdb_quota_rule"; User.Field also finds a key with
// or without Dovecot's "userdb_" prefix. The bare key "nologin" refuses every
// login for that user, as in Dovecot; "nopassword" is not honoured (the
// password is always checked).
//
// The user is an address, local@domain, compared case-insensitively (it is
// stored lower-case). A bare name without '@' gets the default domain
// appended. Blank lines and lines starting with '#' are skipped; CRLF line
// ends are accepted.
//
// The password is "{SCHEME}data". The schemes understood are PLAIN (also
// CLEARTEXT and CLEAR), BLF-CRYPT (bcrypt: $2a$, $2b$ and $2y$), SHA512-CRYPT
// ($6$), SHA256-CRYPT ($5$), ARGON2ID and ARGON2I (PHC strings as written by
// Dovecot and libsodium: $argon2id$v=19$m=...,t=...,p=...$salt$hash), and
// CRYPT, or no {SCHEME} at all, for any of the crypt(3) strings above
// (recognised by their prefix). A user whose password has another scheme, or
// is empty, is loaded but can never log in; the line is logged as a warning
// when the file is loaded. A password in a known scheme that does not parse
// is an error of that line, like a malformed address or a duplicate user.
//
// # Loading and reloading
//
// Open reads the file and reports every malformed line, with file name and
// line number, as one error. Afterwards, on any Authenticate, Lookup or
// Users call, at most once per reload interval (one second by default) the
// file is stat'ed; when its inode, size or modification time changed it is
// read again. If the new file has an error, the error is logged and the users
// loaded before stay in force, so a typo does not lock everyone out; the next
// change to the file is tried again. To change the file atomically, write a
// new file beside it and rename it over the old one.
//
// # Timing
//
// Authenticate spends about the same time whether the user is unknown, the
// password is wrong or the user cannot log in: those paths check the
// password against the hash of the first usable user in the file, so the
// response time does not tell an attacker which addresses exist. Hash
// comparisons are constant-time.
package auth
