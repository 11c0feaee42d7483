"""PIE fine-tuning: training data with plain and performance-conditioned prompts (data, templates),
LoRA on a local model (lora), OpenAI's hosted fine-tuning jobs (openai_jobs), and generating with
the result (evaluate)."""
