"""The Dockerfile language, pure and without I/O: BuildKit's parser and AST, shell-word expansion,
and typed instructions. `strata.builder` runs what it parses; `commit -c` / `import -c` changes
(strata.image.changes) are parsed and expanded by it too, as moby does.
"""
