from iron._record import RecordedOperator


class ElementwiseAdd(RecordedOperator):
    cls, n_buffers = "ElementwiseAdd", 3

    def __init__(self, size, tile_size, num_aie_columns=8, context=None):
        super().__init__(context, size=size, tile_size=tile_size, num_aie_columns=num_aie_columns)
        if size % (num_aie_columns * tile_size):
            raise ValueError("size must be a multiple of num_aie_columns * tile_size")
