"""The Dockerfile language: parser into a typed AST (BuildKit's dump format) and shell words."""
