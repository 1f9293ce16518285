from iron._record import RecordedOperator


class Softmax(RecordedOperator):
    cls = "Softmax"

    def __init__(
        self,
        rows,
        cols,
        num_aie_columns=1,
        num_channels=1,
        rtp_vector_size=None,
        mask_patch_value=0,
        context=None,
    ):
        super().__init__(
            context,
            rows=rows,
            cols=cols,
            num_aie_columns=num_aie_columns,
            num_channels=num_channels,
            rtp_vector_size=rtp_vector_size,
            mask_patch_value=mask_patch_value,
        )
        if rows % 16 or cols % 16:
            raise ValueError("rows and cols must be multiples of 16")
