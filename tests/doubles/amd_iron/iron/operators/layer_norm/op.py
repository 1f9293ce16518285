from iron._record import RecordedOperator


class LayerNorm(RecordedOperator):
    cls = "LayerNorm"

    def __init__(self, size, num_aie_columns, num_channels, tile_size, context=None):
        super().__init__(
            context,
            size=size,
            num_aie_columns=num_aie_columns,
            num_channels=num_channels,
            tile_size=tile_size,
        )
        if size % (num_aie_columns * num_channels * tile_size):
            raise ValueError("size must be a multiple of num_aie_columns * num_channels * tile_size")
