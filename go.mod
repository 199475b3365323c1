module github.com/tidepool-go/tidepool

go 1.26.8

require (
	github.com/puzpuzpuz/xsync/v3 v3.5.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
)
