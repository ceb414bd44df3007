"""Every IMAP command family driven by Python's imaplib, a client written
independently of go-imap. Run by TestPythonImaplibCommands with the server's
host:port; exits non-zero (with the failing assertion) on any surprise."""

import imaplib
import re
import sys
import time

host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
# imaplib knows MOVE (RFC 6851) only as UID MOVE's argument.
imaplib.Commands.setdefault("MOVE", ("SELECTED",))


def ok(res, what):
    typ, data = res
    assert typ == "OK", (what, typ, data)
    return data


def no(fn, *args):
    try:
        typ, data = fn(*args)
    except imaplib.IMAP4.error as e:
        return str(e)
    assert typ == "NO", (fn.__name__, args, typ, data)
    return data


def msg(subject, body, charset="us-ascii", cte="7bit"):
    return (
        "From: Py <py@example.test>\r\n"
        "To: demo@example.test\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n"
        "\r\n"
    ).encode() + body


M = imaplib.IMAP4(host, port)
assert "IMAP4REV1" in M.capabilities, M.capabilities
assert no(M.login, "demo", "wrong")
ok(M.login("demo", "demo"), "LOGIN")
caps = ok(M.capability(), "CAPABILITY")[0].split()
for cap in (b"UIDPLUS", b"MOVE", b"IDLE", b"NAMESPACE", b"UNSELECT", b"SPECIAL-USE", b"ENABLE"):
    assert cap in caps, (cap, caps)

# NAMESPACE: one personal namespace, "." separator.
ns = ok(M.namespace(), "NAMESPACE")[0]
assert ns == b'(("" ".")) NIL NIL', ns

# CREATE / LIST / DELETE / RENAME / SUBSCRIBE / LSUB
ok(M.create("Projects"), "CREATE")
ok(M.create("Projects.2024"), "CREATE child")
no(M.create, "Projects")
listing = b"\n".join(ok(M.list(), "LIST"))
for name, attr in ((b"Sent", rb"\Sent"), (b"Trash", rb"\Trash"), (b"Projects", rb"\HasChildren"),
                   (b"Projects.2024", rb"\HasNoChildren"), (b"INBOX", b"")):
    line = [l for l in listing.split(b"\n") if l.endswith(b'"' + name + b'"') or l.endswith(b" " + name)]
    assert line and attr in line[0], (name, listing)
ok(M.rename("Projects.2024", "Projects.Y2024"), "RENAME")
listing = b"\n".join(ok(M.list('""', "Projects*"), "LIST pattern"))
assert b"Projects.Y2024" in listing and b"Projects.2024" not in listing, listing
no(M.rename, "Nope", "Other")
ok(M.subscribe("Projects"), "SUBSCRIBE")
lsub = b"\n".join(ok(M.lsub(), "LSUB"))
assert b"Projects" in lsub, lsub
ok(M.unsubscribe("Projects"), "UNSUBSCRIBE")
assert b"Projects\"" not in b"\n".join(x or b"" for x in ok(M.lsub('""', "Projects"), "LSUB"))
ok(M.delete("Projects.Y2024"), "DELETE")
no(M.delete, "Projects.Y2024")
no(M.select, "Nope")

# APPEND with flags and internal date; UIDPLUS answers APPENDUID.
date = imaplib.Time2Internaldate(time.mktime((2020, 5, 17, 10, 0, 0, 0, 1, -1)))
typ, data = M.append("INBOX", r"(\Flagged)", date, msg("first", b"hello world\r\n"))
assert typ == "OK" and b"APPENDUID" in data[0], data
latin1 = "Grüße aus Köln".encode("iso-8859-1")
ok(M.append("INBOX", None, None, msg("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", latin1 + b"\r\n", "iso-8859-1", "8bit")), "APPEND 8bit")
ok(M.append("INBOX", r"(\Seen $Label1)", None, msg("third", b"third body\r\n")), "APPEND keyword")

# STATUS
st = ok(M.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"), "STATUS")[0]
assert b"MESSAGES 3" in st and b"UNSEEN 2" in st and b"UIDNEXT 4" in st, st

# EXAMINE is read-only: STORE fails, FETCH BODY[] does not set \Seen.
typ, data = M.select("INBOX", readonly=True)
assert typ == "OK" and data[0] == b"3", data
no(M.store, "1", "+FLAGS", r"(\Deleted)")
ok(M.fetch("1", "(BODY[])"), "FETCH in EXAMINE")
assert rb"\Seen" not in ok(M.fetch("1", "(FLAGS)"), "FLAGS")[0]

typ, data = M.select("INBOX")
assert typ == "OK" and data[0] == b"3", data

# FETCH: every item kind, partial, sections; the message comes back whole.
data = ok(M.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])"), "FETCH all")
meta, body = data[0]
assert b'"17-May-2020' in meta and rb"\Flagged" in meta and b"BODYSTRUCTURE" in meta, meta
assert body == msg("first", b"hello world\r\n"), body
assert re.search(rb"RFC822\.SIZE %d" % len(body), meta), meta
data = ok(M.fetch("1", "(BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.4>)"), "FETCH sections")
parts = {d[0].split()[-1]: d[1] for d in data if isinstance(d, tuple)}
assert b"hello world\r\n" in parts.values() and b"From" in parts.values(), data
assert b"Subject: first\r\n\r\n" in parts.values(), data
no(M.fetch, "9", "(FLAGS)")
# RFC822 (not PEEK) sets \Seen, and the new flags come back.
ok(M.fetch("2", "(RFC822)"), "FETCH RFC822")
assert rb"\Seen" in ok(M.fetch("2", "(FLAGS)"), "FLAGS")[0]

# UID FETCH / UID STORE
data = ok(M.uid("FETCH", "1:*", "(FLAGS)"), "UID FETCH")
assert len([d for d in data if d]) == 3, data
data = ok(M.uid("STORE", "3", "-FLAGS", "($Label1)"), "UID STORE")
assert b"$Label1" not in data[0], data
data = ok(M.store("1", "+FLAGS", r"(\Answered)"), "STORE")
assert rb"\Answered" in data[0], data
ok(M.store("1", "-FLAGS.SILENT", r"(\Answered)"), "STORE.SILENT")

# SEARCH: flags, headers, bodies in another charset, UTF-8 criteria.
assert ok(M.search(None, "FLAGGED"), "SEARCH")[0] == b"1"
assert ok(M.search(None, "SUBJECT", "third"), "SEARCH SUBJECT")[0] == b"3"
assert ok(M.search(None, "BODY", "hello"), "SEARCH BODY")[0] == b"1"
assert ok(M.search(None, "OR", "SEEN", "FLAGGED"), "SEARCH OR")[0] == b"1 2 3"
assert ok(M.search(None, "NOT", "SEEN"), "SEARCH NOT")[0] == b"1"
assert ok(M.search(None, "LARGER", "1", "SMALLER", "100000", "SINCE", "1-Jan-2000"), "SEARCH sizes")[0] == b"1 2 3"
M.literal = "grüße".encode()
assert ok(M.search("UTF-8", "SUBJECT"), "SEARCH CHARSET UTF-8 SUBJECT")[0] == b"2"
M.literal = "Köln".encode()
assert ok(M.search("UTF-8", "BODY"), "SEARCH CHARSET UTF-8 BODY")[0] == b"2"
assert ok(M.uid("SEARCH", "UID", "2:*"), "UID SEARCH")[0] == b"2 3"
typ, data = M.search("X-UNKNOWN-CHARSET", "ALL")
assert typ == "NO", (typ, data)
# An unknown key is a syntax error: BAD (RFC 3501 6.4.4), which imaplib
# raises.
try:
    typ, data = M._simple_command("SEARCH", "FROBNICATE")
    raise AssertionError(("SEARCH FROBNICATE", typ, data))
except imaplib.IMAP4.error as e:
    assert "BAD" in str(e), e

# COPY, UID COPY, MOVE, UID MOVE
typ, data = M.copy("1", "Archive")
assert typ == "OK" and b"COPYUID" in data[0], data
no(M.copy, "1", "Nope")
ok(M.uid("COPY", "2", "Archive"), "UID COPY")
ok(M._simple_command("MOVE", "3", "Trash"), "MOVE")
ok(M._simple_command("UID", "MOVE", "2", "Trash"), "UID MOVE")
assert ok(M.search(None, "ALL"), "after MOVE")[0] == b"1", "MOVE left messages"

# EXPUNGE and UID EXPUNGE
ok(M.store("1", "+FLAGS", r"(\Deleted)"), "STORE Deleted")
M.untagged_responses.pop("EXPUNGE", None)  # MOVE's, already seen
data = ok(M.expunge(), "EXPUNGE")
assert data[0] == b"1", data
ok(M.select("Archive"), "SELECT Archive")
ok(M.store("1:*", "+FLAGS", r"(\Deleted)"), "STORE Deleted")
ok(M.uid("EXPUNGE", "1"), "UID EXPUNGE")
assert ok(M.search(None, "ALL"), "after UID EXPUNGE")[0] == b"1"

# CLOSE expunges silently; UNSELECT does not.
ok(M.close(), "CLOSE")
typ, data = M.select("Archive")
assert data[0] == b"0", data
ok(M.select("Trash"), "SELECT Trash")
ok(M.store("1", "+FLAGS", r"(\Deleted)"), "STORE")
ok(M.unselect(), "UNSELECT")
typ, data = M.select("Trash")
assert data[0] == b"2", data

# IDLE, through raw commands: a second session's APPEND reaches the
# idling one as EXISTS.
ok(M.select("INBOX"), "SELECT")
tag = M._new_tag()
M.send(tag + b" IDLE\r\n")
assert M.readline().startswith(b"+"), "no IDLE continuation"
N = imaplib.IMAP4(host, port)
ok(N.login("demo", "demo"), "LOGIN 2")
ok(N.append("INBOX", None, None, msg("during idle", b"x\r\n")), "APPEND during IDLE")
N.logout()
M.socket().settimeout(5)
line = M.readline()
assert re.match(rb"\* \d+ EXISTS", line), line
M.send(b"DONE\r\n")
while True:
    line = M.readline()
    if line.startswith(tag):
        assert b" OK" in line, line
        break

# ENABLE (RFC 5161, authenticated state): UTF8=ACCEPT is taken, unknown
# capabilities are ignored.
ok(M.unselect(), "UNSELECT")
typ, data = M._simple_command("ENABLE", "UTF8=ACCEPT", "X-UNKNOWN")
assert typ == "OK", (typ, data)
enabled = M.untagged_responses.pop("ENABLED", [b""])[0]
assert b"UTF8=ACCEPT" in enabled and b"X-UNKNOWN" not in enabled, enabled

M.logout()
print("ok")
