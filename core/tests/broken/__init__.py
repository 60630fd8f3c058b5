"""The catalogue of deliberately broken connectors (issue 17, item 3).

Each broken connector is a correct one with one bug, written the way a third party
writes a connector (only ``ledgerlink`` and ``ledgerlink.testing``), against a vendor
emulated by respx routes (so the catalogue also proves the suites need no sandbox):

- :mod:`broken.shop`: a shop API and the source ``catalogue-shop`` (correct), with one
  subclass per source bug;
- :mod:`broken.books`: a bookkeeping API and the target ``catalogue-books`` (correct),
  with one subclass per target bug;
- :mod:`broken.mappers`: the status mapper ``catalogue-mapper`` (correct) and broken ones;
- :mod:`broken.plugin`: ``catalogue_plugin``, which registers all of them.

``core/tests/test_contract_catalogue.py`` runs the suites: in full against the correct
connectors (they must pass), and the one test each bug breaks against each broken
connector, which must fail with the message that names the bug.
"""
