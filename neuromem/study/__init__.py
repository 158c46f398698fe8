"""The study layer: what is done with trained cells, beside the training itself (`neuromem.train`).

- `store`: the results store (results.sqlite + cells/<cell>/: cell.json, representations.npz, model.pt),
  atomic writes, and `read_checkpoint_file`, the reader of the model.pt it writes
- `report`: results.csv / results.json / report.html, accuracy tables with confidence intervals, stale cells
- `figures`, `stats`: the report's figures; Student-t intervals and paired tests over matched seeds
- `perturb`, `evaluate`: robustness and pattern-completion evaluations (`EVALUATIONS`) of finished cells
- `reprice`: energy re-priced from stored operation counts under another energy profile
"""
