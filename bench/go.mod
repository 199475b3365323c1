module github.com/tidepool-go/tidepool/bench

go 1.26.8

require (
	github.com/jackc/puddle/v2 v2.2.3
	github.com/puzpuzpuz/xsync/v3 v3.5.1
	github.com/tidepool-go/tidepool v0.0.0
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.28.0 // indirect
	golang.org/x/sync v0.1.0 // indirect
)

replace github.com/tidepool-go/tidepool => ../
