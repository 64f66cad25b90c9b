"""PromptPipe: habit prompts and LLM conversations with participants over WhatsApp."""

__version__ = "0.1.0"
