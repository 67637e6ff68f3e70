"""Dockerfile builds: parser and shell-word expander, build context and ``.dockerignore``,
cache keys with the explanation of every miss, and the stage executor."""
