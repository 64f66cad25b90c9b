"""PromptPipe: habit prompts and LLM conversations with study participants over WhatsApp."""

__version__ = "0.1.0"
