"""Drives the submission server with Python's standard smtplib only.

usage: smtplib_client.py HOST PORT USER PASSWORD

Prints one JSON object: for each scenario, the replies smtplib got.
python_test.go checks them, and what reached the node.
"""

import json
import smtplib
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
results = {}


def connect():
    return smtplib.SMTP(host, port, local_hostname="python.test", timeout=30)


def reply(e):
    """The (code, text) of an smtplib exception."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return {rcpt: [code, text.decode()] for rcpt, (code, text) in e.recipients.items()}
    if isinstance(e, smtplib.SMTPSenderRefused):
        return [e.smtp_code, e.smtp_error.decode()]
    return [e.smtp_code, e.smtp_error.decode() if isinstance(e.smtp_error, bytes) else e.smtp_error]


def message(*header, body="Hello from smtplib.\r\n"):
    return ("\r\n".join(header) + "\r\n\r\n" + body).encode()


# EHLO: what the server announces.
with connect() as s:
    s.ehlo()
    results["features"] = {k: v for k, v in s.esmtp_features.items()}

# Nothing before AUTH.
with connect() as s:
    try:
        s.sendmail("alice@example.org", ["bob@example.org"], message("From: alice@example.org"))
        results["no_auth"] = "accepted"
    except smtplib.SMTPException as e:
        results["no_auth"] = reply(e)

# A wrong password.
with connect() as s:
    try:
        s.login(user, password + "-wrong")
        results["bad_login"] = "accepted"
    except smtplib.SMTPAuthenticationError as e:
        results["bad_login"] = reply(e)

# Log in (smtplib picks PLAIN) and send with To, Cc and Bcc. sendmail, not
# send_message: send_message would remove the Bcc field itself.
with connect() as s:
    s.login(user, password)
    refused = s.sendmail(
        "alice@example.org",
        ["bob@example.org", "carol@example.org", "dave@example.org"],
        message(
            "From: Alice <alice@example.org>",
            "To: Bob <bob@example.org>",
            "Cc: carol@example.org",
            "Bcc: dave@example.org",
            "Subject: from smtplib",
        ),
    )
    results["bcc"] = refused

    # Recipients that cannot be reached: one never, one not now.
    for name, rcpt in [("permanent", "x@nodsep.example"), ("temporary", "y@flaky.example")]:
        try:
            s.sendmail("alice@example.org", [rcpt], message("From: alice@example.org"))
            results[name] = "accepted"
        except smtplib.SMTPRecipientsRefused as e:
            results[name] = reply(e)

    # One good and one refused recipient: the good one gets it.
    results["partial"] = {
        k: [c, t.decode()]
        for k, (c, t) in s.sendmail(
            "alice@example.org",
            ["bob@example.org", "x@nodsep.example"],
            message("From: alice@example.org", "Subject: partial"),
        ).items()
    }

    # MAIL FROM not an own address.
    try:
        s.sendmail("mallory@example.org", ["bob@example.org"], message("From: alice@example.org"))
        results["mail_from"] = "accepted"
    except smtplib.SMTPSenderRefused as e:
        results["mail_from"] = reply(e)

    # From header not an own address.
    try:
        s.sendmail("alice@example.org", ["bob@example.org"], message("From: mallory@example.org"))
        results["from_header"] = "accepted"
    except smtplib.SMTPDataError as e:
        results["from_header"] = reply(e)

    # Too large: smtplib declares SIZE= in MAIL, refused there.
    size = int(results["features"]["size"])
    try:
        s.sendmail("alice@example.org", ["bob@example.org"],
                   message("From: alice@example.org", body="x" * 76 + "\r\n") + b"y" * size)
        results["oversize"] = "accepted"
    except smtplib.SMTPSenderRefused as e:
        results["oversize"] = reply(e)

    # A line of 5,000 octets (over RFC 5322's 998) goes through.
    s.sendmail("alice@example.org", ["bob@example.org"],
               message("From: alice@example.org", "Subject: long line", body="z" * 5000 + "\r\n"))
    results["long_line"] = "accepted"

    # Still alive after all that.
    results["noop"] = s.noop()[0]

# LOGIN, with and without the initial response.
for name, initial in [("login_ir", True), ("login_no_ir", False)]:
    with connect() as s:
        s.ehlo()
        s.user, s.password = user, password
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=initial)
        results[name] = code
        s.sendmail("alice@example.org", ["bob@example.org"],
                   message("From: alice@example.org", "Subject: " + name))

print(json.dumps(results))
