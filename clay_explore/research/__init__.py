"""The research core: embed, fit, evaluate, reconstruct, vectors, projections, similarity, export."""
