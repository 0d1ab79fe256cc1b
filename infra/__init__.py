"""Local cloud: the stack in template.yaml, run on an AWS emulator by local runners."""
