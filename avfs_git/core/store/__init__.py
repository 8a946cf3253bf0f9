"""The object store: git objects, packs, refs, running git, the names git refuses, transport
to git servers, the tree differ. The only tier that touches pygit2. Imports nothing of core but
its shared vocabulary (``core.errors``, ``core.types``, ``core.settings``)."""
