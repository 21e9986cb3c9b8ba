"""Operators: run backover on the worker, call the Lambdas, check the databases."""
