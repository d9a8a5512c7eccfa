"""Seeds many KMS keys into a running moto server through boto3, for the collection benchmark.

Usage: seed_bulk.py ENDPOINT_URL N_KEYS REGION [REGION...]

Creates N_KEYS customer managed symmetric keys spread evenly over the regions (key i goes to
REGION[i % len(REGIONS)]). Each key gets an alias `alias/bench-<i>`, two tags
(environment=production, owner=team-<i%7>), automatic rotation and one grant
(role app-<i%5>, Decrypt and Encrypt). Prints one JSON line: {"keys": N, "seconds": S}.
"""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ACCOUNT = "123456789012"
WORKERS = 16


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: seed_bulk.py ENDPOINT_URL N_KEYS REGION [REGION...]")
    endpoint = sys.argv[1]
    n_keys = int(sys.argv[2])
    regions = sys.argv[3:]

    # boto3 clients are thread-safe (sessions are not): one per region, made up front, with a
    # connection pool as large as the thread pool.
    config = Config(max_pool_connections=WORKERS, retries={"max_attempts": 3, "mode": "standard"})
    clients = {
        region: boto3.client(
            "kms",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )
        for region in regions
    }

    def seed(i):
        kms = clients[regions[i % len(regions)]]
        key_id = kms.create_key(
            Description=f"Bench key {i}",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[
                {"TagKey": "environment", "TagValue": "production"},
                {"TagKey": "owner", "TagValue": f"team-{i % 7}"},
            ],
        )["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/bench-{i}", TargetKeyId=key_id)
        kms.enable_key_rotation(KeyId=key_id)
        kms.create_grant(
            KeyId=key_id,
            GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/app-{i % 5}",
            Operations=["Decrypt", "Encrypt"],
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        # list() re-raises the first failure, so a broken seed fails the script.
        list(pool.map(seed, range(n_keys)))
    seconds = time.monotonic() - started
    print(json.dumps({"keys": n_keys, "seconds": round(seconds, 3)}), flush=True)


if __name__ == "__main__":
    main()
