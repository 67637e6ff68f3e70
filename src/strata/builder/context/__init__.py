"""The build context: the files a build may read, ``.dockerignore``, and their content keys."""
