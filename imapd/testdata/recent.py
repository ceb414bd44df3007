# \Recent (RFC 3501 2.3.2) and FLAGS updates, driven by imaplib over the
# transport named by argv[2] ("plain" or "tls"). Three messages are in
# INBOX and no session has selected it yet.
import imaplib, ssl, sys

host, port = sys.argv[1].rsplit(":", 1)


def connect():
    if sys.argv[2] == "tls":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    else:
        m = imaplib.IMAP4(host, int(port))
    typ, _ = m.login("demo", "demo")
    assert typ == "OK"
    return m


def check(cond, *what):
    if not cond:
        print("FAIL", *what)
        sys.exit(1)


a = connect()
# STATUS counts the messages no session has seen.
typ, data = a.status("INBOX", "(MESSAGES RECENT)")
check(typ == "OK" and b"RECENT 3" in data[0], "status before select", data)
# EXAMINE shows them as recent without taking them.
typ, data = a.select("INBOX", readonly=True)
check(a.untagged_responses.get("RECENT") == [b"3"], "examine RECENT", a.untagged_responses)
a.close()
typ, data = a.status("INBOX", "(RECENT)")
check(b"RECENT 3" in data[0], "status after examine", data)

# The first read-write SELECT takes them.
typ, data = a.select("INBOX")
check(a.untagged_responses.get("RECENT") == [b"3"], "select RECENT", a.untagged_responses)
typ, data = a.fetch("1:*", "(FLAGS)")
check(all(b"\\Recent" in d for d in data), "fetch flags", data)
typ, data = a.search(None, "RECENT")
check(data == [b"1 2 3"], "search recent", data)
a.store("2", "+FLAGS", "(\\Seen)")
typ, data = a.search(None, "NEW")
check(data == [b"1 3"], "search new", data)
typ, data = a.search(None, "OLD")
check(data == [b""], "search old", data)

# A second session sees none of them as recent.
b = connect()
typ, data = b.status("INBOX", "(RECENT)")
check(b"RECENT 0" in data[0], "status in second session", data)
b.select("INBOX")
check(b.untagged_responses.get("RECENT") == [b"0"], "second select RECENT", b.untagged_responses)
typ, data = b.search(None, "OLD")
check(data == [b"1 2 3"], "search old in second session", data)
typ, data = b.fetch("1", "(FLAGS)")
check(b"\\Recent" not in data[0], "fetch flags in second session", data)

# A message appended now is recent in exactly one of the two sessions.
typ, _ = a.append("INBOX", None, None, b"Subject: new\r\n\r\nnew\r\n")
check(typ == "OK", "append")
a.noop()
b.noop()
ra = a.untagged_responses.get("RECENT", [])
rb = b.untagged_responses.get("RECENT", [])
typ, fa = a.fetch("4", "(FLAGS)")
typ, fb = b.fetch("4", "(FLAGS)")
na = b"\\Recent" in fa[0]
nb = b"\\Recent" in fb[0]
check(na != nb, "new message recent in exactly one session", fa, fb)

# A keyword new to the mailbox reaches the other session as FLAGS before
# any FETCH that carries it.
b.untagged_responses.pop("FLAGS", None)
a.store("1", "+FLAGS", "($Tern15)")
b.noop()
flags = b.untagged_responses.get("FLAGS", [])
check(any(b"$Tern15" in f for f in flags), "FLAGS update", b.untagged_responses)
# A keyword stays in FLAGS once defined, even when no message carries it
# any more (as Dovecot does): a client is never told it was dropped.
a.store("1", "-FLAGS", "($Tern15)")
c = connect()
c.select("INBOX", readonly=True)
check(any(b"$Tern15" in f for f in c.untagged_responses.get("FLAGS", [])), "FLAGS after removal", c.untagged_responses)
c.logout()
b.logout()
a.close()
# Closed: nothing is recent to anyone any more.
typ, data = a.status("INBOX", "(RECENT)")
check(b"RECENT 0" in data[0], "status after close", data)
a.logout()
print("ok")
