"""Creates an AWS Organization with one member account ("dr-backup") in a running moto server.

Usage: seed_org.py ENDPOINT_URL. Prints {"member": "<account id>"}.
"""

import json
import sys

import boto3

org = boto3.client(
    "organizations",
    region_name="us-east-1",
    endpoint_url=sys.argv[1],
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
org.create_organization(FeatureSet="ALL")
created = org.create_account(Email="dr@example.com", AccountName="dr-backup")
print(json.dumps({"member": created["CreateAccountStatus"]["AccountId"]}))
