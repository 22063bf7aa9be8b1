"""Independent reading of bounce reports for the reporting tests: Python's email package parses
each file given and prints, per file, the recipient groups of every message/delivery-status part
(Final-Recipient, Action, Status) and the Message-ID of the returned original (a message/rfc822
part, or a text/rfc822-headers part's header; in a multipart/report, the report's own).
Run with /usr/bin/python3, standard library only."""
import email, email.parser, email.policy, json, sys

def field(group, name):
    value = group.get(name)
    return ' '.join(str(value).split()) if value is not None else None

def original_id(part):
    """The Message-ID of a returned-original part, or None."""
    kind = part.get_content_type()
    if kind == 'message/rfc822' and part.get_payload():
        return field(part.get_payload(0), 'Message-ID')
    if kind in ('text/rfc822-headers', 'text/rfc822-header'):
        body = (part.get_payload(decode=True) or b'').lstrip()
        return field(email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(body), 'Message-ID')
    return None

def report(path):
    with open(path, 'rb') as f:
        msg = email.message_from_binary_file(f, policy=email.policy.compat32)
    recipients, first_id, report_id = [], None, None
    for part in msg.walk():
        if part.get_content_type() == 'message/delivery-status':
            for group in part.get_payload():
                if group.get('Final-Recipient') or group.get('Original-Recipient') or group.get('Action'):
                    recipients.append({name: field(group, name) for name in ('Final-Recipient', 'Original-Recipient', 'Action', 'Status')})
        elif part.get_content_type() == 'multipart/report':
            # RFC 6522: the returned original is the report's own part; the innermost report wins.
            found = [original_id(child) for child in part.get_payload()[1:]]
            report_id = next((i for i in found if i), report_id)
        elif first_id is None:
            first_id = original_id(part)
    return {'recipients': recipients, 'messageId': report_id or first_id}

print(json.dumps({path: report(path) for path in sys.argv[1:]}))
