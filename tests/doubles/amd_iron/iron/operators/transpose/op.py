from iron._record import RecordedOperator


class Transpose(RecordedOperator):
    cls = "Transpose"

    def __init__(self, M, N, num_aie_columns, num_channels, m, n, s, context=None):
        super().__init__(
            context, M=M, N=N, num_aie_columns=num_aie_columns, num_channels=num_channels, m=m, n=n, s=s
        )
        if M % m or N % n or m % s or n % s or (M * N) % (m * n * num_aie_columns * num_channels):
            raise ValueError("transpose tiles do not divide the matrix")
