"""Creates an ECC_NIST_P256 signing key (for keyproof's --sign-with-kms) in a running moto server.

Usage: seed_signing.py ENDPOINT_URL. Prints {"key_arn": "..."}.
"""

import json
import sys

import boto3

kms = boto3.client(
    "kms",
    region_name="eu-west-1",
    endpoint_url=sys.argv[1],
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
key = kms.create_key(
    KeySpec="ECC_NIST_P256",
    KeyUsage="SIGN_VERIFY",
    Description="keyproof evidence manifest signing",
)
print(json.dumps({"key_arn": key["KeyMetadata"]["Arn"]}))
