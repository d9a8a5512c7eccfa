"""Seeds a small estate into a running moto server through boto3, the AWS SDK for Python.

Usage: seed.py ENDPOINT_URL
Prints one JSON object on stdout naming what was created (key ids, ARNs, names), which the Rust
tests compare with the snapshot keyproof collects.

The estate (default account 123456789012 unless noted):
- eu-west-1: a customer managed symmetric key with a hostile description, tags, an alias, a
  custom key policy, a constrained grant and rotation enabled; an RSA key (no rotation applies);
  a key pending deletion; a multi-Region trail with log file validation and KMS encryption,
  logging, basic selectors that exclude nothing; a single-Region trail with advanced selectors
  that exclude KMS events; a Config recorder (all supported types) that is recording; S3 buckets
  (SSE-KMS with the key, SSE-S3) and SNS topics (with the key, without encryption) for Config.
- us-east-1: one key, and no Config recorder (a gap, not "zero resources").
- account 111111111111, eu-west-1: one key, reached by assuming a role.
"""

import json
import sys

import boto3

ENDPOINT = sys.argv[1]
CREDS = dict(aws_access_key_id="testing", aws_secret_access_key="testing")
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "111111111111"


def client(service, region, **creds):
    return boto3.client(service, region_name=region, endpoint_url=ENDPOINT, **(creds or CREDS))


def policy(account, extra_statements=()):
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                *extra_statements,
            ],
        }
    )


out = {}

# --- eu-west-1 -----------------------------------------------------------------------------
kms = client("kms", "eu-west-1")
payments = kms.create_key(
    Description='Payments <script>alert("x")</script> =HYPERLINK("http://evil")',
    KeyUsage="ENCRYPT_DECRYPT",
    KeySpec="SYMMETRIC_DEFAULT",
    Tags=[
        {"TagKey": "environment", "TagValue": "production"},
        {"TagKey": "pci-scope", "TagValue": "cde"},
    ],
)["KeyMetadata"]
kms.create_alias(AliasName="alias/prod-payments", TargetKeyId=payments["KeyId"])
payments_policy = policy(
    ACCOUNT,
    [
        {
            "Sid": "AllowUseThroughS3InThisAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}},
        }
    ],
)
kms.put_key_policy(KeyId=payments["KeyId"], PolicyName="default", Policy=payments_policy)
kms.enable_key_rotation(KeyId=payments["KeyId"], RotationPeriodInDays=90)
kms.rotate_key_on_demand(KeyId=payments["KeyId"])
grant = kms.create_grant(
    KeyId=payments["KeyId"],
    GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/payments-app",
    Operations=["Decrypt", "GenerateDataKey"],
    Constraints={"EncryptionContextSubset": {"app": "payments"}},
    Name="payments-app",
)
out["payments"] = {
    "key_id": payments["KeyId"],
    "arn": payments["Arn"],
    "policy": payments_policy,
    "grant_id": grant["GrantId"],
}

rsa = kms.create_key(Description="Signing", KeyUsage="SIGN_VERIFY", KeySpec="RSA_2048")["KeyMetadata"]
out["rsa"] = {"key_id": rsa["KeyId"], "arn": rsa["Arn"]}

doomed = kms.create_key(Description="Old batch key")["KeyMetadata"]
kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
out["doomed"] = {"key_id": doomed["KeyId"], "arn": doomed["Arn"]}

s3 = client("s3", "eu-west-1")
for bucket in ["keyproof-audit-logs", "cardholder-statements", "public-assets"]:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
s3.put_bucket_encryption(
    Bucket="cardholder-statements",
    ServerSideEncryptionConfiguration={
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": payments["Arn"],
                }
            }
        ]
    },
)
s3.put_bucket_tagging(
    Bucket="cardholder-statements",
    Tagging={"TagSet": [{"Key": "environment", "Value": "production"}]},
)
s3.put_bucket_encryption(
    Bucket="public-assets",
    ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    },
)

sns = client("sns", "eu-west-1")
alerts = sns.create_topic(Name="payment-alerts", Attributes={"KmsMasterKeyId": payments["KeyId"]})
plain = sns.create_topic(
    Name="marketing-news", Tags=[{"Key": "environment", "Value": "production"}]
)
out["topics"] = {"encrypted": alerts["TopicArn"], "plain": plain["TopicArn"]}

trails = client("cloudtrail", "eu-west-1")
org = trails.create_trail(
    Name="estate-trail",
    S3BucketName="keyproof-audit-logs",
    IsMultiRegionTrail=True,
    EnableLogFileValidation=True,
    KmsKeyId=payments["Arn"],
)
trails.start_logging(Name="estate-trail")
trails.put_event_selectors(
    TrailName="estate-trail",
    EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}],
)
local = trails.create_trail(Name="app-trail", S3BucketName="keyproof-audit-logs")
trails.put_event_selectors(
    TrailName="app-trail",
    AdvancedEventSelectors=[
        {
            "Name": "Management events without KMS",
            "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]},
                {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]},
            ],
        }
    ],
)
out["trails"] = {"multi": org["TrailARN"], "local": local["TrailARN"]}

config = client("config", "eu-west-1")
config.put_configuration_recorder(
    ConfigurationRecorder={
        "name": "default",
        "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config-recorder",
        "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": False},
    }
)
config.put_delivery_channel(DeliveryChannel={"name": "default", "s3BucketName": "keyproof-audit-logs"})
config.start_configuration_recorder(ConfigurationRecorderName="default")

# --- us-east-1 ------------------------------------------------------------------------------
east = client("kms", "us-east-1").create_key(Description="US payments")["KeyMetadata"]
out["east"] = {"key_id": east["KeyId"], "arn": east["Arn"]}

# --- a second account, through a role -------------------------------------------------------
sts = client("sts", "eu-west-1")
assumed = sts.assume_role(
    RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/keyproof-audit", RoleSessionName="seed"
)["Credentials"]
other_creds = dict(
    aws_access_key_id=assumed["AccessKeyId"],
    aws_secret_access_key=assumed["SecretAccessKey"],
    aws_session_token=assumed["SessionToken"],
)
other = client("kms", "eu-west-1", **other_creds).create_key(Description="DR backups")["KeyMetadata"]
out["other"] = {"key_id": other["KeyId"], "arn": other["Arn"]}

print(json.dumps(out))
