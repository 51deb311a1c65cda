module github.com/berth-dev/berth/nodeimage/versions

go 1.26.0
