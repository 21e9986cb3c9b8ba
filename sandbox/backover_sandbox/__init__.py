"""Local sandbox that stands in for the AWS services Back Over drives (moto plus the local AWS runner)."""
