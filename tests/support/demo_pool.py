"""Seed a small Cognito user pool in moto for scripts/demo.

Usage: demo_pool.py ENDPOINT_URL PASSWORD

Creates a pool (usernames are not e-mails; every user has a verified e-mail), an app client
allowing ADMIN_USER_PASSWORD_AUTH, and five users who all have PASSWORD:

  alice  confirmed                       -> migrated by the demo's own login
  erin   confirmed                       -> left pending, for you to log in
  bob    confirmed, SMS MFA enabled      -> refused: hooks.mfa_policy = deny
  carol  confirmed, disabled             -> refused: disabled in Cognito (inactive in Kratos)
  dave   temporary password (FORCE_CHANGE_PASSWORD) -> refused: temporary_password_policy = deny

Prints one line `pool_id <id> client_id <id>`. Talks to ENDPOINT_URL only (a loopback moto),
with dummy credentials.
"""

import sys

import boto3

REGION = "us-east-1"


def main() -> None:
    endpoint, password = sys.argv[1], sys.argv[2]
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )
    pool_id = cognito.create_user_pool(
        PoolName="cognito-bridge-demo",
        MfaConfiguration="OPTIONAL",
        AutoVerifiedAttributes=["email"],
    )["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="kratos-bridge",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]

    def create(username: str, given_name: str, extra=()) -> None:
        attributes = [
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "given_name", "Value": given_name},
            *extra,
        ]
        cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            TemporaryPassword=password,
            MessageAction="SUPPRESS",
            UserAttributes=attributes,
        )

    def confirm(username: str) -> None:
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=password, Permanent=True
        )

    for username, given_name in [("alice", "Alice"), ("erin", "Erin"), ("carol", "Carol")]:
        create(username, given_name)
        confirm(username)

    create("bob", "Bob", [{"Name": "phone_number", "Value": "+15555550100"}])
    confirm("bob")
    cognito.set_user_pool_mfa_config(
        UserPoolId=pool_id,
        SmsMfaConfiguration={"SmsConfiguration": {"SnsCallerArn": "arn:aws:iam::123456789012:role/demo-sms"}},
        MfaConfiguration="OPTIONAL",
    )
    cognito.admin_set_user_mfa_preference(
        UserPoolId=pool_id,
        Username="bob",
        SMSMfaSettings={"Enabled": True, "PreferredMfa": True},
    )

    cognito.admin_disable_user(UserPoolId=pool_id, Username="carol")

    # dave never changed the password an admin gave him: FORCE_CHANGE_PASSWORD.
    create("dave", "Dave")

    print(f"pool_id {pool_id} client_id {client_id}", flush=True)


if __name__ == "__main__":
    main()
