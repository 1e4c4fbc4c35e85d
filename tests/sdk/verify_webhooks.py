"""Verifies webhooks Sluice delivered with the Standard Webhooks reference library.

Usage: verify_webhooks.py SECRET FILE
FILE holds one JSON object per line: {"headers": {...}, "body": "..."} as the receiver got them.
Each must verify; the same with its body changed, or with another secret, must not.
Prints one line per webhook: its id and event type.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret, path = sys.argv[1], sys.argv[2]
hook = Webhook(secret)
other = Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
n = 0
with open(path, encoding="utf-8") as f:
    for line in f:
        got = json.loads(line)
        payload = hook.verify(got["body"], got["headers"])
        for forged, verifier in ((got["body"] + " ", hook), (got["body"], other)):
            try:
                verifier.verify(forged, got["headers"])
            except WebhookVerificationError:
                pass
            else:
                sys.exit(f"a forged webhook verified: {got['headers']['webhook-id']}")
        print(got["headers"]["webhook-id"], payload["type"])
        n += 1
if n == 0:
    sys.exit("no webhooks to verify")
