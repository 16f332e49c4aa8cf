package comm

// Failed is the collective by which ranks agree to stop together: every
// rank says whether it failed, and every rank gets the list of ranks that
// did, in rank order (empty: all succeeded). A rank that fails before a
// collective the others enter would leave them waiting forever; calling
// Failed first lets them all return instead.
func Failed(c Comm, failed bool) ([]int, error) {
	flags := make([]float32, c.Size())
	if failed {
		flags[c.Rank()] = 1
	}
	if err := c.AllReduceSum(flags); err != nil {
		return nil, err
	}
	var ranks []int
	for r, f := range flags {
		if f != 0 {
			ranks = append(ranks, r)
		}
	}
	return ranks, nil
}

// RankList formats ranks as "1", "1 and 3", "1, 2 and 3".
func RankList(ranks []int) string {
	s := ""
	for i, r := range ranks {
		switch {
		case i == 0:
		case i == len(ranks)-1:
			s += " and "
		default:
			s += ", "
		}
		s += itoa(r)
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
