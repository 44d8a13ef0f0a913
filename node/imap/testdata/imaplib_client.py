#!/usr/bin/env python3
"""Drives the node's IMAP server with Python's imaplib (standard library
only) and prints what it saw as JSON, for imaplib_test.go.

usage: imaplib_client.py HOST PORT USER PASSWORD
"""
import base64
import imaplib
import json
import sys
import time


def s(b):
    """bytes (or a list of bytes and tuples) as text, for the JSON."""
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    if isinstance(b, tuple):
        return [s(x) for x in b]
    if isinstance(b, list):
        return [s(x) for x in b]
    return b


def main():
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    out = {}
    m = imaplib.IMAP4(host, port)
    out["capabilities"] = list(m.capabilities)
    try:
        m.login(user, "wrong password")
        out["bad_login"] = "accepted"
    except imaplib.IMAP4.error as e:
        out["bad_login"] = str(e)
    typ, _ = m.login(user, password)
    out["login"] = typ

    typ, data = m.list()
    out["list"] = s(data)

    typ, data = m.select("INBOX")
    out["select"] = [typ, s(data)]

    typ, data = m.fetch("1", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    out["fetch_envelope"] = s(data)

    typ, data = m.fetch("1", "(BODY.PEEK[])")
    out["body"] = base64.b64encode(data[0][1]).decode()

    typ, data = m.uid("SEARCH", None, "FROM", '"zoe"')
    out["uid_search_from"] = s(data)
    typ, data = m.search(None, "UNSEEN")
    out["search_unseen"] = s(data)

    typ, data = m.store("1", "+FLAGS", "(\\Flagged $Python)")
    out["store"] = s(data)

    date = imaplib.Time2Internaldate(time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)))
    msg = b"From: alice@example.org\r\nSubject: draft from imaplib\r\n\r\nunfinished\r\n"
    typ, data = m.append("Drafts", "(\\Draft)", date, msg)
    out["append"] = [typ, s(data)]

    typ, data = m.copy("2", "Archive")
    out["copy"] = [typ, s(data)]

    typ, data = m.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = m.expunge()
    out["expunge"] = [typ, s(data)]

    typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
    out["status"] = s(data)

    typ, data = m.select("Nowhere")
    out["select_missing"] = typ + " " + " ".join(s(data))

    m.logout()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
