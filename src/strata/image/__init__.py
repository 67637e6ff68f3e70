"""Images: config + ordered layers + history; store, unpack, mutate, import and export."""
