"""Container networks: bridge networks through the CNI plugins, namespaces, published ports.

Knows nothing of images or containers' records: a caller gives a container ID, the networks
(:mod:`.bridge`) and ports (:mod:`.ports`) it wants, and gets the namespace to run it in and its
endpoints (:mod:`.attachments`); user networks are recorded in SQLite (:mod:`.records`).
"""
