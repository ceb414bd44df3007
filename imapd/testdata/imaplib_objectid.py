"""OBJECTID (RFC 8474), SAVEDATE (RFC 8514), PREVIEW (RFC 8970) and
METADATA (RFC 5464) driven by Python's imaplib, a client written
independently of go-imap. Run by TestPythonImaplibObjectID with the
server's host:port; exits non-zero (with the failing assertion) on any
surprise."""

import imaplib
import re
import sys

host, port = sys.argv[1].rsplit(":", 1)
for cmd in ("GETMETADATA", "SETMETADATA"):
    imaplib.Commands.setdefault(cmd, ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("MOVE", ("SELECTED",))

MSG = (
    "From: Py <py@example.test>\r\n"
    "To: demo@example.test\r\n"
    "Subject: objectid\r\n"
    "Message-ID: <py-objectid@example.test>\r\n"
    "\r\n"
    "Hello   from\r\n  imaplib.\r\n"
).encode()


def ok(res, what):
    typ, data = res
    assert typ == "OK", (what, typ, data)
    return data


M = imaplib.IMAP4(host, int(port))
ok(M.login("demo", "demo"), "LOGIN")
caps = ok(M.capability(), "CAPABILITY")[0].split()
for cap in (b"OBJECTID", b"SAVEDATE", b"PREVIEW", b"METADATA", b"METADATA-SERVER"):
    assert cap in caps, (cap, caps)

data = ok(M.create("PyObj"), "CREATE")
mboxid = re.search(rb"\[MAILBOXID \((F[0-9a-f]{24})\)\]", data[0]).group(1)
ok(M.create("PyObj2"), "CREATE")
ok(M.append("PyObj", None, None, MSG), "APPEND")

data = ok(M.status("PyObj", "(MESSAGES MAILBOXID)"), "STATUS")
assert b"MAILBOXID (" + mboxid + b")" in data[0], data

ok(M.select("PyObj"), "SELECT")
assert M.response("MAILBOXID")[1] == [b"(" + mboxid + b")"], M.response("MAILBOXID")

data = ok(M.fetch("1", "(EMAILID THREADID SAVEDATE PREVIEW)"), "FETCH")
line = data[0]
emailid = re.search(rb"EMAILID \((M[0-9a-f]{24})\)", line).group(1)
assert re.search(rb"THREADID \(T[0-9a-f]{24}\)", line), line
assert re.search(rb'SAVEDATE "\d{2}-\w{3}-\d{4} ', line), line
assert b'PREVIEW "Hello from imaplib."' in line, line

data = ok(M.search(None, "EMAILID", emailid.decode()), "SEARCH EMAILID")
assert data == [b"1"], data
data = ok(M.search(None, "SAVEDATESUPPORTED"), "SEARCH SAVEDATESUPPORTED")
assert data == [b"1"], data

# The EMAILID goes with a copy and a moved message.
ok(M.copy("1", "PyObj2"), "COPY")
ok(M._simple_command("MOVE", "1", "PyObj2"), "MOVE")
ok(M.select("PyObj2"), "SELECT")
data = ok(M.fetch("1:2", "(EMAILID)"), "FETCH")
assert len(data) == 2 and all(emailid in d for d in data), data

# METADATA: server and mailbox entries, RENAME carries them.
ok(M._simple_command("SETMETADATA", '""', '(/private/py "server value")'), "SETMETADATA server")
ok(M._simple_command("GETMETADATA", '""', "/private/py"), "GETMETADATA server")
meta = M.untagged_responses.pop("METADATA")
assert b'/private/py "server value"' in meta[0], meta
ok(M._simple_command("SETMETADATA", "PyObj2", '(/shared/comment "moved here")'), "SETMETADATA")
ok(M.unselect(), "UNSELECT")
ok(M.rename("PyObj2", "PyObj3"), "RENAME")
ok(M._simple_command("GETMETADATA", "(DEPTH infinity)", "PyObj3", "/shared"), "GETMETADATA")
meta = M.untagged_responses.pop("METADATA")
assert b'/shared/comment "moved here"' in meta[0], meta
typ, data = M._simple_command("GETMETADATA", "Nowhere", "/shared/comment")
assert typ == "NO" and b"NONEXISTENT" in data[0], (typ, data)
try:
    M._simple_command("SETMETADATA", "PyObj3", '(/bogus "x")')
    raise AssertionError("SETMETADATA /bogus accepted")
except imaplib.IMAP4.error as e:
    assert "BAD" in str(e) or "Invalid" in str(e), e

M.logout()
print("ok")
