"""Training: the VerLM prefix model (staged) and LoRA fine-tuning of Hugging Face VLMs."""
