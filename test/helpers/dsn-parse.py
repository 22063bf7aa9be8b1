"""Independent check of delivery status notifications (RFC 3464): Python's email package parses
each file given and prints, per file, as JSON: the top-level fields, the report type, the
human-readable text, the per-message and per-recipient fields of the message/delivery-status
part, and what the third part returns (its content type, and the Message-ID it carries).
Run with /usr/bin/python3."""
import email, email.policy, json, sys

def fields(block):
    return {k.lower(): str(v) for k, v in block.items()}

def report(msg):
    out = {
        'headers': fields(msg),
        'type': msg.get_content_type(),
        'reportType': msg.get_param('report-type'),
        'defects': [type(d).__name__ for d in msg.defects],
    }
    parts = list(msg.iter_parts()) if msg.is_multipart() else []
    out['parts'] = [p.get_content_type() for p in parts]
    if len(parts) >= 2:
        out['human'] = parts[0].get_content()
        blocks = parts[1].get_payload()
        out['message'] = fields(blocks[0])
        out['recipients'] = [fields(b) for b in blocks[1:]]
    if len(parts) >= 3:
        returned = parts[2]
        if returned.get_content_type() == 'message/rfc822':
            inner = returned.get_payload(0)
            out['returned'] = {'type': 'message/rfc822', 'messageId': inner.get('message-id'), 'body': inner.get_content() if not inner.is_multipart() else None}
        else:
            inner = email.message_from_bytes(returned.get_payload(decode=True) or returned.get_content().encode(), policy=email.policy.default)
            out['returned'] = {'type': returned.get_content_type(), 'messageId': inner.get('message-id')}
    return out

result = {}
for name in sys.argv[1:]:
    with open(name, 'rb') as f:
        result[name] = report(email.message_from_binary_file(f, policy=email.policy.default))
print(json.dumps(result))
