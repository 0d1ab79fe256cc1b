from tests.unit.conftest import aws, clock, dynamodb, settings, sqs  # noqa: F401
