"""Object stores: the rows kmipd keeps. They only ever receive sealed key material."""
