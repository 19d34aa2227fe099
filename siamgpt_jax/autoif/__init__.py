"""Stream B: Thai AutoIF synthesis (instructions, verification functions, cross-validation,
responses) and the sandbox that runs LLM-written code."""
