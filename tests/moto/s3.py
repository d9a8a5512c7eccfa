"""S3 set-up and inspection for keyproof's publishing and CloudTrail-in-S3 tests.

Usage:
  s3.py ENDPOINT buckets                 creates "evidence-locked" (Object Lock enabled) and
                                         "evidence-plain" (no Object Lock); prints their names
  s3.py ENDPOINT upload BUCKET DIR       creates BUCKET and uploads every file under DIR with its
                                         relative path as the key, a `<file>.sig` beside a file
                                         becoming its signature metadata (as CloudTrail keeps a
                                         digest's); prints {"uploaded": n}
  s3.py ENDPOINT inspect BUCKET          prints every object: sha256, Object Lock mode and date,
                                         and whether deleting its version was refused
"""

import hashlib
import json
import os
import sys

from aws import client

endpoint, action = sys.argv[1], sys.argv[2]
s3 = client("s3", endpoint)

if action == "buckets":
    s3.create_bucket(
        Bucket="evidence-locked",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        ObjectLockEnabledForBucket=True,
    )
    s3.create_bucket(
        Bucket="evidence-plain",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    print(json.dumps({"locked": "evidence-locked", "plain": "evidence-plain"}))
elif action == "upload":
    bucket, root = sys.argv[3], sys.argv[4]
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".sig"):
                continue
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, root).replace(os.sep, "/")
            extra = {}
            # A digest's signature lives in its object metadata, as CloudTrail delivers it.
            if os.path.exists(path + ".sig"):
                with open(path + ".sig") as f:
                    extra["Metadata"] = {
                        "signature": f.read().strip(),
                        "signature-algorithm": "SHA256withRSA",
                    }
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
            n += 1
    print(json.dumps({"uploaded": n}))
elif action == "inspect":
    bucket = sys.argv[3]
    out = {}
    listing = s3.list_object_versions(Bucket=bucket)
    for v in listing.get("Versions", []):
        key, version = v["Key"], v["VersionId"]
        # An unversioned bucket lists version "null", which is addressed without a version.
        which = {} if version in (None, "null") else {"VersionId": version}
        body = s3.get_object(Bucket=bucket, Key=key, **which)["Body"].read()
        entry = {"sha256": hashlib.sha256(body).hexdigest(), "mode": None, "until": None}
        # moto 5.2.5 answers GetObjectRetention with the object itself; HeadObject carries the
        # lock as headers.
        head = s3.head_object(Bucket=bucket, Key=key, **which)
        if "ObjectLockMode" in head:
            entry["mode"] = head["ObjectLockMode"]
            entry["until"] = head["ObjectLockRetainUntilDate"].isoformat()
        try:
            s3.delete_object(Bucket=bucket, Key=key, **which)
            entry["delete_refused"] = False
        except s3.exceptions.ClientError as e:
            entry["delete_refused"] = e.response["Error"]["Code"]
        out[key] = entry
    print(json.dumps(out))
else:
    sys.exit(f"unknown action {action}")
