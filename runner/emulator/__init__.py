"""The local stack: API Gateway, Lambda (with memory-to-CPU fidelity) and DynamoDB on one host."""
