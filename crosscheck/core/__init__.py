"""The vocabulary every layer shares: the problem, dtypes, padding, values, the error model, errors."""
