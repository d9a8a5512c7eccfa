"""The boto3 client every seeding and checking script uses: moto's endpoint, dummy credentials."""

import boto3


def client(service, endpoint, region="eu-west-1"):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
