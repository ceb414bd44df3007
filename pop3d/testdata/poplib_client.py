"""Drives pop3d with Python's poplib through every command.

Usage: poplib_client.py HOST PORT TLS_PORT CAFILE
Prints one JSON object with what the server answered; the Go test checks it.
"""
import base64
import json
import poplib
import ssl
import sys

host, port, tls_port, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the test certificate names localhost, not 127.0.0.1
out = {}


def text(b):
    return b.decode("utf-8", "surrogateescape")


def message(lines):
    # poplib strips CRLF and the byte-stuffing; the stored message has LF ends.
    return "".join(text(l) + "\n" for l in lines)


def err(f, *args):
    try:
        f(*args)
    except poplib.error_proto as e:
        return text(e.args[0])
    return "no error"


p = poplib.POP3(host, port, timeout=30)
out["welcome"] = text(p.getwelcome())
out["capa"] = p.capa()
out["statbeforelogin"] = err(p.stat)
out["stls"] = text(p.stls(ctx))
out["capatls"] = p.capa()
out["user"] = text(p.user("demo"))
out["pass"] = text(p.pass_("demo"))
out["stat"] = list(p.stat())
resp, lines, _ = p.list()
out["list"] = [text(l) for l in lines]
out["list1"] = text(p.list(1))
resp, lines, _ = p.uidl()
out["uidl"] = [text(l) for l in lines]
out["uidl2"] = text(p.uidl(2))
count = out["stat"][0]
out["retr"] = []
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    out["retr"].append({"resp": text(resp), "msg": message(lines)})
resp, lines, _ = p.top(1, 1)
out["top"] = message(lines)
out["noop"] = text(p.noop())
out["dele1"] = text(p.dele(1))
out["retrdeleted"] = err(p.retr, 1)
out["retrmissing"] = err(p.retr, count + 1)
out["rset"] = text(p.rset())
out["dele2"] = text(p.dele(2))
out["quit"] = text(p.quit())

# SASL PLAIN with an initial response over implicit TLS (RFC 5034, 995).
s = poplib.POP3_SSL(host, tls_port, context=ctx, timeout=30)
plain = base64.b64encode(b"\0demo\0demo").decode()
out["auth"] = text(s._shortcmd("AUTH PLAIN " + plain))
out["tlsstat"] = list(s.stat())
out["tlsquit"] = text(s.quit())

print(json.dumps(out))
