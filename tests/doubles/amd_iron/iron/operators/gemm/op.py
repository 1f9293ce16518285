from iron._record import RecordedOperator


class GEMM(RecordedOperator):
    cls, n_buffers = "GEMM", 3

    def __init__(
        self,
        M,
        K,
        N,
        num_aie_columns=None,
        tile_m=64,
        tile_k=64,
        tile_n=64,
        b_col_maj=False,
        c_col_maj=False,
        emulate_bf16_mmul_with_bfp16=True,
        prio_accuracy=False,
        round_conv_even=True,
        use_scalar=False,
        context=None,
    ):
        super().__init__(
            context,
            M=M,
            K=K,
            N=N,
            num_aie_columns=num_aie_columns,
            tile_m=tile_m,
            tile_k=tile_k,
            tile_n=tile_n,
            b_col_maj=b_col_maj,
            c_col_maj=c_col_maj,
            emulate_bf16_mmul_with_bfp16=emulate_bf16_mmul_with_bfp16,
            prio_accuracy=prio_accuracy,
            round_conv_even=round_conv_even,
            use_scalar=use_scalar,
        )
        if M % (4 * tile_m) or K % tile_k or N % (tile_n * (num_aie_columns or 1)):
            raise ValueError(
                f"GEMM {M}x{K}x{N} does not tile with {tile_m}/{tile_k}/{tile_n} on {num_aie_columns} columns"
            )
