"""The request pipeline: ordered, typed steps between a surface and a provider."""
