#!/usr/bin/env python3
"""A mail client using only Python's standard library: submit at Alice's
node with smtplib, read at Bob's node with imaplib. Prints one JSON object.

usage: mailclient.py ALICE_SMTP ALICE_USER ALICE_PASS BOB_IMAP BOB_USER BOB_PASS
"""
import email
import imaplib
import json
import smtplib
import sys
import time

alice_smtp, alice_user, alice_pass, bob_imap, bob_user, bob_pass = sys.argv[1:7]
out = {}

host, port = alice_smtp.rsplit(":", 1)
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("python.test")
    try:
        s.login(alice_user, "not-the-password")
        out["bad_login"] = "accepted"
    except smtplib.SMTPAuthenticationError as e:
        out["bad_login"] = e.smtp_code
    s.login(alice_user, alice_pass)
    msg = (
        "From: Alice <%s>\r\nTo: %s\r\nSubject: from smtplib\r\n"
        "Message-ID: <py-1@example.org>\r\n\r\nHello from Python's smtplib.\r\n"
    ) % (alice_user, bob_user)
    refused = s.sendmail(alice_user, [bob_user], msg)
    out["refused"] = list(refused)

host, port = bob_imap.rsplit(":", 1)
m = imaplib.IMAP4(host, int(port))
m.login(bob_user, bob_pass)
typ, data = m.select("INBOX")
uids = []
deadline = time.time() + 60
while time.time() < deadline:
    m.noop()
    typ, data = m.uid("SEARCH", None, 'SUBJECT "from smtplib"')
    uids = data[0].split()
    if uids:
        break
    time.sleep(0.2)
out["found"] = len(uids)
if uids:
    typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[] FLAGS)")
    raw = data[0][1]
    parsed = email.message_from_bytes(raw)
    out["subject"] = parsed["Subject"]
    out["auth_results"] = parsed["Authentication-Results"]
    out["body"] = parsed.get_payload()
    typ, _ = m.uid("STORE", uids[0], "+FLAGS", r"(\Flagged)")
    typ, data = m.uid("FETCH", uids[0], "(FLAGS)")
    out["flags"] = data[0].decode()
typ, data = m.list()
out["folders"] = [d.decode() for d in data]
m.logout()
print(json.dumps(out))
