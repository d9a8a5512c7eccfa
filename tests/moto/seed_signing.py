"""Creates an ECC_NIST_P256 signing key (for keyproof's --sign-with-kms) in a running moto server.

Usage: seed_signing.py ENDPOINT_URL. Prints {"key_arn": "..."}.
"""

import json
import sys

from aws import client

kms = client("kms", sys.argv[1])
key = kms.create_key(
    KeySpec="ECC_NIST_P256",
    KeyUsage="SIGN_VERIFY",
    Description="keyproof evidence manifest signing",
)
print(json.dumps({"key_arn": key["KeyMetadata"]["Arn"]}))
