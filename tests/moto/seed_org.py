"""Creates an AWS Organization with one member account ("dr-backup") in a running moto server.

Usage: seed_org.py ENDPOINT_URL. Prints {"member": "<account id>"}.
"""

import json
import sys

from aws import client

org = client("organizations", sys.argv[1], region="us-east-1")
org.create_organization(FeatureSet="ALL")
created = org.create_account(Email="dr@example.com", AccountName="dr-backup")
print(json.dumps({"member": created["CreateAccountStatus"]["AccountId"]}))
