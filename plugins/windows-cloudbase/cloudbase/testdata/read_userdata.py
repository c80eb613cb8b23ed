"""Reads user-data from stdin the way Cloudbase-Init's UserDataPlugin does
and prints what it would act on, as JSON, on stdout.

The steps follow cloudbaseinit/plugins/common/userdata.py (1.1.x): the
text before the first blank line ("\n\n") holds the headers, and only if
they contain "Content-Type: multipart" is the data parsed as MIME with the
standard library's email package; every part's payload is decoded
(get_payload(decode=True)) and dispatched by its content type. A
text/cloud-config part is loaded with PyYAML's CLoader (or Loader), as
cloudconfig.py does. Anything json cannot represent (a date, say) makes
this script fail, so such a value cannot pass as a string.
"""
import email
import json
import sys

import yaml

data = sys.stdin.buffer.read()
content = data.decode()
headers = content.split("\n\n")[0]
if "Content-Type: multipart" not in headers:
    sys.exit("not multipart: Cloudbase-Init would treat the whole user-data as one script or cloud-config")

loader = getattr(yaml, "CLoader", yaml.Loader)
parts = []
for part in email.message_from_string(content).walk():
    content_type = part.get_content_type()
    item = {"content_type": content_type, "filename": part.get_filename()}
    if not part.is_multipart():
        payload = part.get_payload(decode=True)
        item["payload"] = payload.decode("ascii")
        if content_type == "text/cloud-config":
            item["cloud_config"] = yaml.load(payload, Loader=loader)
    parts.append(item)
json.dump(parts, sys.stdout)
