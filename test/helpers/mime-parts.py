"""Independent check of MIME output: Python's email package parses each file given and prints,
per file, every part (depth-first, inside message/rfc822 too) as JSON: its path, content type,
charset, transfer encoding, filename, decoded text (text parts that are not attachments) and
the SHA-256 of its decoded bytes. Run with /usr/bin/python3 (Debian's, whatever else is on PATH)."""
import email, email.policy, hashlib, json, sys

def parts(part, path):
    out = [{
        'path': path,
        'type': part.get_content_type(),
        'charset': part.get_content_charset(),
        'cte': part.get('content-transfer-encoding', '').lower() or None,
        'filename': part.get_filename(),
        'defects': [type(d).__name__ for d in part.defects],
    }]
    if part.is_multipart():
        for i, child in enumerate(part.iter_parts() if part.get_content_type() != 'message/rfc822' else [part.get_payload(0)]):
            out += parts(child, f'{path}.{i + 1}')
        return out
    payload = part.get_payload(decode=True) or b''
    out[0]['sha256'] = hashlib.sha256(payload).hexdigest()
    if part.get_content_maintype() == 'text' and part.get_content_disposition() != 'attachment':
        out[0]['text'] = payload.decode(part.get_content_charset() or 'us-ascii', errors='strict')
    return out

result = {}
for name in sys.argv[1:]:
    with open(name, 'rb') as f:
        result[name] = parts(email.message_from_binary_file(f, policy=email.policy.default), '1')
print(json.dumps(result))
